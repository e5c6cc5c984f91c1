# Golden values for stats.agreement on public multilevel data with unequal groups, made
# with R and multilevel (Bliese). Run from the repository root:
#   Rscript tests/expected/generate_r_agreement.R
# Writes tests/expected/agreement_public.json: each group's sufficient statistics (so the
# tests need no raw data) and what multilevel computes from the raw rows.
suppressPackageStartupMessages({ library(multilevel); library(jsonlite) })
data(bh1996); data(lq2002)

# ICC(1) two ways. multilevel::ICC1 puts the mean group size N / J in
# (MSB - MSW) / (MSB + (k - 1) MSW); the n0 convention (Snijders & Bosker 2012)
# uses n0 = (N - sum n_j^2 / N) / (J - 1). bh1996 has 99 groups of 15 to 226.
icc_both <- function(y, g) {
  fit <- aov(y ~ as.factor(g))
  tab <- summary(fit)[[1]]
  msb <- tab[1, "Mean Sq"]; msw <- tab[2, "Mean Sq"]
  n_j <- as.numeric(table(g)); N <- sum(n_j); J <- length(n_j)
  n0 <- (N - sum(n_j^2) / N) / (J - 1)
  list(sizes = n_j, means = unname(tapply(y, g, mean)),
       within = unname(tapply(y, g, function(v) sum((v - mean(v))^2))),
       msb = msb, msw = msw, mean_size = N / J, n0 = n0,
       icc1_mean_size = multilevel::ICC1(fit), icc1_n0 = (msb - msw) / (msb + (n0 - 1) * msw),
       icc2 = multilevel::ICC2(fit))
}
bh <- lapply(c(wbeing = "WBEING", cohes = "COHES", lead = "LEAD", hrs = "HRS"),
             function(v) icc_both(bh1996[[v]], bh1996$GRP))

# rwg(j) against two nulls for a 5-point item: uniform, (A^2 - 1) / 12 = 2, and slightly
# skewed (James, Demaree & Wolf 1984: proportions .05 .15 .20 .35 .25 -> variance 1.34);
# and Lindell, Brandt & Whitney's (1999) r*wg(j) = 1 - mean item variance / null,
# untruncated and not stepped up by the number of items. lq2002: 49 companies.
slight_skew <- c(.05, .15, .20, .35, .25)
skew_var <- sum(slight_skew * (1:5)^2) - sum(slight_skew * (1:5))^2
agreement <- function(items) {
  x <- lq2002[, items]; g <- lq2002$COMPID
  list(items = items,
       groups = as.character(sort(unique(g))),
       item_variances = unname(as.matrix(aggregate(x, list(g), var)[, -1])),
       rwg_j_uniform = rwg.j(x, g, ranvar = 2)$rwg.j,
       rwg_j_slight_skew = rwg.j(x, g, ranvar = skew_var)$rwg.j,
       rwg_j_star_uniform = rwg.j.lindell(x, g, ranvar = 2)$rwg.lindell,
       rwg_j_star_slight_skew = rwg.j.lindell(x, g, ranvar = skew_var)$rwg.lindell)
}
lq <- list(lead = agreement(sprintf("LEAD%02d", 1:11)),
           tsig = agreement(sprintf("TSIG%02d", 1:3)))

versions <- list(R = R.version.string, multilevel = as.character(packageVersion("multilevel")))
write(toJSON(list(versions = versions, slight_skew_variance = skew_var, bh1996 = bh,
                  lq2002 = lq), auto_unbox = TRUE, digits = NA, pretty = TRUE),
      "tests/expected/agreement_public.json")
