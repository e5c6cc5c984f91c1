# Golden values for stats.reliability and stats.agreement, made with R 4.2
# (psych 2.2.9) on the committed synthetic sample. Run from the repository root:
#   Rscript tests/expected/generate_r_reliability.R
# Writes tests/expected/reliability_samples.json. R is not a test dependency: the JSON
# is committed and tests/test_reliability.py compares against it.
suppressPackageStartupMessages({ library(psych); library(jsonlite); library(yaml) })

instrument <- yaml::read_yaml("instruments/support-culture-v1.yaml")
responses <- read.csv("data_samples/responses_clean.csv", na.strings = "")
items <- Filter(function(i) is.null(i$kind) || i$kind == "scale", instrument$items)

scale_items <- function(scale_id) {
  members <- Filter(function(i) i$scale == scale_id, items)
  x <- responses[, vapply(members, function(i) i$id, "")]
  x[x == 9] <- NA                                   # don't know / prefer not to say
  for (i in members) if (isTRUE(i$reverse)) x[[i$id]] <- 6 - x[[i$id]]
  x
}

one_alpha <- function(x, use) {
  x_used <- if (use == "listwise") na.omit(x) else x
  a <- psych::alpha(x_used, warnings = FALSE, check.keys = FALSE)
  n_obs <- nrow(x_used); k <- ncol(x_used)
  # psych::alpha.ci is the Feldt (1965) interval psych reports.
  ci <- psych::alpha.ci(a$total$raw_alpha, n.obs = n_obs, n.var = k, p.val = 0.05, digits = 10)
  om <- suppressWarnings(suppressMessages(
    psych::omega(x_used, nfactors = 1, fm = "minres", plot = FALSE)))
  list(n = n_obs, k = k,
       raw_alpha = a$total$raw_alpha, std_alpha = a$total$std.alpha,
       feldt_lower = unname(ci[["lower.ci"]]), feldt_upper = unname(ci[["upper.ci"]]),
       omega_total = om$omega.tot,
       item_total_corrected = unname(a$item.stats$r.drop),
       alpha_if_deleted = unname(a$alpha.drop$raw_alpha),
       items = colnames(x_used))
}

# ICC(1), ICC(2) from a one-way ANOVA, unequal groups via n0 (Snijders & Bosker 2012);
# rwg(j) (James, Demaree & Wolf 1984) with the uniform null of a 5-point scale,
# sigma_EU^2 = (A^2 - 1) / 12 = 2, truncated to 0 when the observed variance exceeds it.
aggregation <- function(x, group) {
  score <- rowMeans(x, na.rm = TRUE)
  score[rowSums(!is.na(x)) < ceiling(ncol(x) / 2)] <- NA
  keep <- !is.na(score)
  y <- score[keep]; g <- droplevels(factor(group[keep]))
  fit <- summary(aov(y ~ g))[[1]]
  msb <- fit[1, "Mean Sq"]; msw <- fit[2, "Mean Sq"]
  n_j <- as.numeric(table(g)); N <- sum(n_j); J <- length(n_j)
  n0 <- (N - sum(n_j^2) / N) / (J - 1)
  rwg <- sapply(levels(factor(group)), function(level) {
    xs <- x[group == level, , drop = FALSE]
    s2 <- mean(apply(xs, 2, var, na.rm = TRUE))
    ratio <- s2 / 2; k <- ncol(xs)
    if (ratio >= 1) 0 else k * (1 - ratio) / (k * (1 - ratio) + ratio)
  })
  list(n = N, groups = J, n0 = n0, msb = msb, msw = msw,
       icc1 = (msb - msw) / (msb + (n0 - 1) * msw), icc2 = (msb - msw) / msb,
       rwg_j = as.list(rwg), rwg_j_median = median(rwg))
}

result <- list()
for (scale in instrument$scales) {
  x <- scale_items(scale$id)
  result[[scale$id]] <- list(
    pairwise = one_alpha(x, "pairwise"),
    listwise = one_alpha(x, "listwise"),
    by_site = aggregation(x, responses$site)
  )
}
writeLines(toJSON(result, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/expected/reliability_samples.json")
