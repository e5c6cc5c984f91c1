# Worked example for funnel plots with overdispersion, shrinkage and BH, computed in
# base R independently of the Python code (stats/comparison.py).
#
# Spiegelhalter DJ. Funnel plots for comparing institutional performance. Stat Med
# 2005;24:1185-1202 (normal indicator, 10% winsorised z-scores, additive random
# effect estimated by DerSimonian-Laird). Empirical Bayes: Morris 1983.
#
# Run from the project root:  Rscript tests/expected/generate_r_funnel.R
# Writes tests/expected/funnel_worked_example.json. R is not a test dependency.

library(jsonlite)

# Twelve made-up sites: respondents, mean scale score (1-5) and SD.
n  <- c(25, 40, 60, 80, 100, 120, 150, 200, 250, 300, 400, 500)
y  <- c(3.40, 3.05, 3.62, 3.10, 3.25, 2.80, 3.30, 3.18, 3.35, 3.05, 3.22, 3.28)
sd <- c(0.70, 0.80, 0.75, 0.72, 0.68, 0.81, 0.77, 0.74, 0.70, 0.79, 0.73, 0.76)

target <- sum(n * y) / sum(n)                       # the all-sites mean
sigma  <- sqrt(sum((n - 1) * sd^2) / sum(n - 1))    # pooled within-site SD
s2     <- sigma^2 / n
z      <- (y - target) / sqrt(s2)
q      <- quantile(z, c(0.1, 0.9), type = 7)
zw     <- pmin(pmax(z, q[1]), q[2])
phi_paper <- mean(zw^2)
# Consistency factor: the second moment of a standard normal winsorised at 10% / 90%.
f      <- 0.1
qf     <- qnorm(1 - f)
cfac   <- (1 - 2 * f) - 2 * qf * dnorm(qf) + 2 * f * qf^2
phi    <- phi_paper / cfac
w      <- 1 / s2
I      <- length(y)
dl     <- function(ph) max(0, (I * ph - (I - 1)) / (sum(w) - sum(w^2) / sum(w)))
tau2   <- dl(phi)
tau2_paper <- dl(phi_paper)
z_adj  <- (y - target) / sqrt(s2 + tau2)
p      <- 2 * pt(-abs(z_adj), I - 1)
q_bh   <- p.adjust(p, method = "BH")

limits_at <- c(10, 50, 100, 1000)
lim <- function(level) {
  half <- qnorm(0.5 + level / 2) * sqrt(sigma^2 / limits_at + tau2)
  list(low = target - half, high = target + half)
}

# Empirical Bayes with tau2 from above.
wr   <- 1 / (s2 + tau2)
mu   <- sum(wr * y) / sum(wr)
B    <- tau2 / (tau2 + s2)
eb   <- mu + B * (y - mu)
ebse <- sqrt(B * s2 + (1 - B)^2 / sum(wr))

out <- list(
  input = list(n = n, mean = y, sd = sd),
  target = target, sigma = sigma, z = as.numeric(z), z_winsorised = as.numeric(zw),
  phi = phi, tau2 = tau2, phi_paper = phi_paper, tau2_paper = tau2_paper,
  winsorised_normal_second_moment = cfac, z_adjusted = z_adj, p = p, q_bh = q_bh,
  limits_n = limits_at, limits95 = lim(0.95), limits998 = lim(0.998),
  eb_grand_mean = mu, eb_mean = eb, eb_se = ebse,
  r_version = R.version.string
)
write_json(out, "tests/expected/funnel_worked_example.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
