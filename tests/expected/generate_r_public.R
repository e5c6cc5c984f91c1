# Golden values on two public datasets shipped with the R packages themselves, made with
# R 4.2 (psych 2.2.9, lavaan 0.6.14, semTools 0.5-6):
#
#   - lavaan::HolzingerSwineford1939: 301 pupils, nine ability tests, two schools (the
#     three-factor CFA of lavaan's own tutorial);
#   - psych::bfi: 2,800 SAPA respondents, 25 six-point personality items with missing
#     answers, gender and education.
#
# The repository keeps synthetic data only, so the raw rows are not committed. What is
# committed is what every statistic here depends on: counts, means and covariance
# matrices (overall, per group, pairwise where the policy is pairwise), and, for the
# aggregation checks, per-group sizes, score means and variances and item variances.
# tests/test_public_datasets.py rebuilds data sets with exactly these moments and checks
# that our functions reproduce R's numbers on them. Run from the repository root:
#   Rscript tests/expected/generate_r_public.R
# Writes tests/expected/public_datasets.json; R is not a test dependency.
suppressPackageStartupMessages({
  library(psych); library(lavaan); library(semTools); library(jsonlite)
})

moments <- function(x) {
  list(n = nrow(x), columns = colnames(x), means = unname(colMeans(x)),
       cov = unname(cov(x)))
}

fit_summary <- function(fit) {
  m <- fitMeasures(fit, c("chisq", "df", "cfi", "tli", "rmsea", "rmsea.ci.lower",
                          "rmsea.ci.upper", "srmr"))
  as.list(setNames(unname(m), names(m)))
}

std_loadings <- function(fit) {
  s <- standardizedSolution(fit)
  s <- s[s$op == "=~", ]
  out <- list()
  for (f in unique(s$lhs)) out[[f]] <- as.list(setNames(s$est.std[s$lhs == f], s$rhs[s$lhs == f]))
  out
}

reliability <- function(x) {
  a <- psych::alpha(x, warnings = FALSE, check.keys = FALSE)
  ci <- psych::alpha.ci(a$total$raw_alpha, n.obs = nrow(x), n.var = ncol(x), p.val = 0.05,
                        digits = 10)
  om <- suppressWarnings(suppressMessages(
    psych::omega(x, nfactors = 1, fm = "minres", plot = FALSE)))
  list(n = nrow(x), raw_alpha = a$total$raw_alpha, std_alpha = a$total$std.alpha,
       feldt_lower = unname(ci[["lower.ci"]]), feldt_upper = unname(ci[["upper.ci"]]),
       omega_total = om$omega.tot, item_total_corrected = unname(a$item.stats$r.drop),
       alpha_if_deleted = unname(a$alpha.drop$raw_alpha))
}

invariance <- function(model, data, group) {
  steps <- list(configural = "", metric = "loadings",
                scalar = c("loadings", "intercepts"))
  lapply(steps, function(eq) {
    fit <- cfa(model, data = data, group = group, group.equal = eq)
    m <- fitMeasures(fit, c("chisq", "df", "cfi", "rmsea"))
    as.list(setNames(unname(m), names(m)))
  })
}

# CFA fit, loadings, CR, AVE, HTMT, KMO and Bartlett of `model` on complete data `x`.
structural <- function(model, x) {
  fit <- cfa(model, data = x)
  r <- cor(x)
  k <- psych::KMO(r)
  b <- psych::cortest.bartlett(r, n = nrow(x))
  list(fit = fit_summary(fit), loadings = std_loadings(fit),
       composite_reliability = as.list(compRelSEM(fit)), ave = as.list(AVE(fit)),
       htmt = unname(as.matrix(semTools::htmt(model, data = x))),
       kmo_overall = k$MSA, kmo_items = unname(k$MSAi),
       bartlett_chisq = b$chisq, bartlett_df = b$df)
}

group_moments <- function(x, g) {
  lapply(split(x, g), function(block) {
    list(n = nrow(block), means = unname(colMeans(block)),
         cov = unname(cov(block)))
  })
}

# --- Holzinger & Swineford (1939) --------------------------------------------------------
hs <- HolzingerSwineford1939
tests <- paste0("x", 1:9)
hs_model <- "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
one_factor <- paste("ability =~", paste(tests, collapse = " + "))
hs_factors <- list(visual = tests[1:3], textual = tests[4:6], speed = tests[7:9])
holzinger <- c(list(
  moments = moments(hs[, tests]),
  by_school = group_moments(hs[, tests], hs$school),
  structure = hs_factors),
  structural(hs_model, hs[, tests]),
  list(reliability = lapply(hs_factors, function(cols) reliability(hs[, cols])),
       invariance_school = invariance(one_factor, hs, "school")))

# --- bfi (SAPA) ----------------------------------------------------------------------------
data(bfi, package = "psych")
traits <- list(agreeableness = paste0("A", 1:5), conscientiousness = paste0("C", 1:5),
               extraversion = paste0("E", 1:5), neuroticism = paste0("N", 1:5),
               openness = paste0("O", 1:5))
reversed <- c("A1", "C4", "C5", "E1", "E2", "O2", "O5")
keyed <- bfi[, unlist(traits)]
for (item in reversed) keyed[[item]] <- 7 - keyed[[item]]
complete <- na.omit(keyed)
bfi_model <- paste(vapply(names(traits), function(t)
  paste(t, "=~", paste(traits[[t]], collapse = " + ")), ""), collapse = "\n")

# Pairwise reliability needs each scale's pairwise covariance (alpha, item statistics),
# its pairwise correlation (omega: psych correlates each pair on its own respondents)
# and its row count.
pairwise <- lapply(traits, function(cols) {
  x <- keyed[, cols]
  list(n = nrow(x), cov = unname(cov(x, use = "pairwise")),
       cor = unname(cor(x, use = "pairwise")), golden = reliability(x))
})

# ICC(1) / ICC(2) by education (unequal groups) and rwg(j) per education group (uniform
# null of a six-point scale: sigma_EU^2 = (6^2 - 1) / 12), as in generate_r_reliability.R.
aggregation <- lapply(traits, function(cols) {
  x <- keyed[, cols]
  group <- bfi$education
  score <- rowMeans(x, na.rm = TRUE)
  score[rowSums(!is.na(x)) < ceiling(ncol(x) / 2)] <- NA
  keep <- !is.na(score) & !is.na(group)
  y <- score[keep]; g <- factor(group[keep])
  fit <- summary(aov(y ~ g))[[1]]
  msb <- fit[1, "Mean Sq"]; msw <- fit[2, "Mean Sq"]
  n_j <- as.numeric(table(g)); N <- sum(n_j); J <- length(n_j)
  n0 <- (N - sum(n_j^2) / N) / (J - 1)
  null_var <- (6^2 - 1) / 12
  by_group <- lapply(levels(g), function(level) {
    xs <- x[!is.na(group) & group == level, , drop = FALSE]
    variances <- apply(xs, 2, var, na.rm = TRUE)
    ratio <- mean(variances) / null_var; k <- ncol(xs)
    list(level = level, n = sum(g == level), score_mean = mean(y[g == level]),
         score_var = var(y[g == level]), item_variances = unname(variances),
         item_n = unname(colSums(!is.na(xs))),
         rwg_j = if (ratio >= 1) 0 else k * (1 - ratio) / (k * (1 - ratio) + ratio))
  })
  list(n = N, groups = J, n0 = n0, icc1 = (msb - msw) / (msb + (n0 - 1) * msw),
       icc2 = (msb - msw) / msb, by_group = by_group)
})

agree <- na.omit(data.frame(keyed[, traits$agreeableness], gender = bfi$gender))
agree$gender <- factor(agree$gender, labels = c("male", "female"))
agree_model <- paste("agreeableness =~", paste(traits$agreeableness, collapse = " + "))

sapa <- c(list(
  reversed = reversed,
  structure = traits,
  moments = moments(complete)),
  structural(bfi_model, complete),
  list(pairwise = pairwise,
  aggregation = aggregation,
  agreeableness_by_gender = list(
    by_group = group_moments(agree[, traits$agreeableness], agree$gender),
    steps = invariance(agree_model, agree, "gender"))
))

versions <- list(R = R.version.string, psych = as.character(packageVersion("psych")),
                 lavaan = as.character(packageVersion("lavaan")),
                 semTools = as.character(packageVersion("semTools")))
write(toJSON(list(versions = versions, holzinger_swineford = holzinger, bfi = sapa),
             auto_unbox = TRUE, digits = NA, pretty = TRUE),
      "tests/expected/public_datasets.json")
