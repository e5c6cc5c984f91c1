# Golden values for stats/outliers.py: the random-effects model and the externally
# studentised deleted residuals of metafor, on per-group summaries of a public
# multilevel dataset shipped with an R package.
#
#   multilevel::bh1996 (Bliese & Halverson 1996): 7,382 soldiers in 99 army companies;
#   WBEING is each soldier's well-being score (0-5). A company plays the part of a site.
#
# Every statistic here depends on the data only through each group's (n, mean, SD), so
# those summaries are committed as the input, with the groups' ids. Cases:
#   all99       all 99 companies
#   seven       7 companies, the size of the demo: company 57 (the lowest WBEING mean
#               of all 99, 0.65 below the overall mean) with six ordinary ones
#   homogeneous the 5 companies whose means are closest to the overall mean (a spread of
#               0.013 points): tau^2 = 0
#   three       3 companies, the fewest the deleted residuals accept
#   boundary    5 made-up units (no group ids), four precise and equal, one imprecise and
#               2 SEs away: the starting value of tau^2 is positive and Fisher scoring
#               creeps down to the REML maximum at 0 (metafor stops at 1.5e-7 with its
#               default control, 5e-13 with ours)
#
# metafor's Fisher scoring stops when tau^2 moves less than 1e-5 (control threshold),
# which leaves tau^2 up to ~1e-6 short of the REML optimum; the goldens are computed
# with threshold 1e-12 so that they are the optimum itself. The default-control REML
# tau^2 is recorded beside them as tau2_default_control.
#
# Run from the project root:  Rscript tests/expected/generate_r_outliers.R
# Writes tests/expected/outliers.json. R is not a test dependency.
suppressPackageStartupMessages({library(multilevel); library(metafor); library(jsonlite)})

data(bh1996, package = "multilevel")
by_group <- split(bh1996$WBEING, bh1996$GRP)
groups <- data.frame(group = as.integer(names(by_group)),
                     n = vapply(by_group, length, 0),
                     mean = vapply(by_group, mean, 0),
                     sd = vapply(by_group, sd, 0))

tight <- list(threshold = 1e-12, maxiter = 10000)

companies <- function(rows) groups[match(rows, groups$group), ]

fit_case <- function(d) {
  vi <- d$sd^2 / d$n
  fits <- lapply(c(REML = "REML", DL = "DL"), function(method) {
    fit <- rma(d$mean, vi, method = method, control = tight)
    pred <- predict(fit)
    del <- rstudent(fit)
    list(tau2 = fit$tau2, mu = as.numeric(fit$beta), se = fit$se,
         ci_low = fit$ci.lb, ci_high = fit$ci.ub, pi_low = pred$pi.lb, pi_high = pred$pi.ub,
         rstudent_z = del$z, rstudent_resid = del$resid, rstudent_se = del$se,
         tau2_without = influence(fit)$inf$tau2.del)
  })
  fits$REML$tau2_default_control <- rma(d$mean, vi, method = "REML")$tau2
  list(group = d$group, n = d$n, mean = d$mean, sd = d$sd, REML = fits$REML, DL = fits$DL)
}

overall <- sum(groups$n * groups$mean) / sum(groups$n)
close_to_overall <- groups$group[order(abs(groups$mean - overall))][1:5]

out <- list(
  all99 = fit_case(groups),
  seven = fit_case(companies(c(57, 5, 18, 29, 44, 71, 90))),
  homogeneous = fit_case(companies(sort(close_to_overall))),
  three = fit_case(companies(c(12, 57, 83))),
  boundary = fit_case(data.frame(group = NA, n = c(100, 100, 100, 100, 1),
                                 mean = c(3, 3, 3, 3, 5), sd = 1)),
  versions = list(r = R.version.string,
                  metafor = as.character(packageVersion("metafor")),
                  multilevel = as.character(packageVersion("multilevel")))
)
write_json(out, "tests/expected/outliers.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
