# Golden values for stats/drivers.py (relative importance of predictors), made with
# R 4.2 (psych 2.2.9) on two public datasets shipped with R itself:
#
#   - psych::sat.act: 700 students' ACT, SAT verbal and quantitative scores, age,
#     education and gender; complete cases (687 rows);
#   - datasets::mtcars: 32 cars, fuel economy against eight design measures (the
#     textbook dominance-analysis example; 8 predictors = all 256 subsets).
#
# No dominance package is installed here (domir, relaimpo, dominanceanalysis and
# yhat are absent), so every number is made here by hand from lm() and glm() fits of
# each subset of predictors, a route independent of ours (Python builds the subset
# R-squared values from the covariance matrix, and fits its own IRLS):
#
#   - general dominance (LMG / Shapley share of R^2): for each predictor, the mean over
#     model sizes k = 1..p of its conditional dominance at k;
#   - conditional dominance at k: the mean increase in R^2 from adding the predictor to
#     every model of k - 1 other predictors;
#   - complete dominance: 1 if the row predictor adds more than the column predictor to
#     every model holding neither, 0 if the reverse, 0.5 if neither dominates;
#   - Johnson's (2000) relative weights from the correlation matrix's eigenvectors;
#   - logistic: the same decomposition of McFadden's R^2_M = 1 - logLik / logLik(null),
#     each glm() fitted to a tight tolerance (epsilon = 1e-14).
#
# The rows used are written into the JSON (both datasets are small), so R is not a test
# dependency. Run from the repository root:
#   Rscript tests/expected/generate_r_drivers.R
# Writes tests/expected/drivers.json.
suppressPackageStartupMessages({ library(psych); library(jsonlite) })

# All 2^p - 1 non-empty subsets of 1..p as bitmasks: bit j - 1 set means predictor j in.
subset_fit <- function(data, outcome, predictors, fit_one) {
  p <- length(predictors)
  fits <- numeric(2^p)   # fits[mask + 1]; the empty model fits 0
  for (mask in 1:(2^p - 1)) {
    inside <- predictors[bitwAnd(mask, 2^(0:(p - 1))) > 0]
    fits[mask + 1] <- fit_one(reformulate(inside, outcome), data)
  }
  fits
}

linear_r2 <- function(formula, data) summary(lm(formula, data))$r.squared

mcfadden <- function(formula, data) {
  null <- glm(reformulate("1", all.vars(formula)[1]), binomial, data,
              control = glm.control(epsilon = 1e-14, maxit = 100))
  model <- glm(formula, binomial, data, control = glm.control(epsilon = 1e-14, maxit = 100))
  1 - as.numeric(logLik(model)) / as.numeric(logLik(null))
}

dominance <- function(fits, predictors) {
  p <- length(predictors)
  masks <- 0:(2^p - 1)
  size <- sapply(masks, function(m) sum(bitwAnd(m, 2^(0:(p - 1))) > 0))
  conditional <- matrix(NA, p, p, dimnames = list(predictors, paste0("k", 1:p)))
  for (j in 1:p) {
    bit <- 2^(j - 1)
    without <- masks[bitwAnd(masks, bit) == 0]
    gain <- fits[without + bit + 1] - fits[without + 1]
    for (k in 1:p) conditional[j, k] <- mean(gain[size[without + 1] == k - 1])
  }
  complete <- matrix(NA, p, p, dimnames = list(predictors, predictors))
  for (i in 1:p) for (j in 1:p) if (i != j) {
    bi <- 2^(i - 1); bj <- 2^(j - 1)
    rest <- masks[bitwAnd(masks, bi + bj) == 0]
    a <- fits[rest + bi + 1]; b <- fits[rest + bj + 1]
    complete[i, j] <- if (all(a > b)) 1 else if (all(b > a)) 0 else 0.5
  }
  general <- rowMeans(conditional)
  list(predictors = predictors, total = fits[2^p], subset_fit = fits,
       general = unname(general), general_share = unname(general / fits[2^p]),
       conditional = unname(conditional), complete = unname(complete))
}

# Johnson (2000): R_xx = V diag(l) V'; Lambda = V diag(sqrt(l)) V' (the correlations of
# the predictors with their closest orthogonal counterparts); beta = Lambda^-1 r_xy;
# raw weight_j = sum_k Lambda_jk^2 beta_k^2, summing to R^2.
relative_weights <- function(data, outcome, predictors) {
  r <- cor(data[, c(outcome, predictors)])
  rxx <- r[predictors, predictors]; rxy <- r[predictors, outcome]
  e <- eigen(rxx, symmetric = TRUE)
  lambda <- e$vectors %*% diag(sqrt(e$values)) %*% t(e$vectors)
  beta <- solve(lambda, rxy)
  raw <- as.vector(lambda^2 %*% beta^2)
  list(raw = raw, share = raw / sum(raw))
}

linear_case <- function(data, outcome, predictors) {
  fits <- subset_fit(data, outcome, predictors, linear_r2)
  out <- dominance(fits, predictors)
  out$outcome <- outcome; out$n <- nrow(data)
  out$relative_weights <- relative_weights(data, outcome, predictors)
  out
}

sat <- na.omit(psych::sat.act)
sat$female <- as.integer(sat$gender == 2)
cars <- datasets::mtcars

golden <- list(
  r_version = R.version.string, psych_version = as.character(packageVersion("psych")),
  data = list(
    sat_act = as.list(sat[, c("gender", "education", "age", "ACT", "SATV", "SATQ",
                              "female")]),
    mtcars = as.list(cars)),
  linear_sat_act = c(list(data = "sat_act"),
                     linear_case(sat, "ACT", c("gender", "education", "age", "SATV", "SATQ"))),
  linear_mtcars = c(list(data = "mtcars"),
                    linear_case(cars, "mpg", c("cyl", "disp", "hp", "drat", "wt", "qsec",
                                               "gear", "carb"))),
  logistic_sat_act = local({
    predictors <- c("education", "age", "ACT", "SATV", "SATQ")
    fits <- subset_fit(sat, "female", predictors, mcfadden)
    c(list(data = "sat_act", outcome = "female", n = nrow(sat)), dominance(fits, predictors))
  })
)

path <- "tests/expected/drivers.json"
writeLines(toJSON(golden, digits = NA, auto_unbox = TRUE, pretty = FALSE), path)
cat("wrote", path, file.info(path)$size, "bytes\n")
