# Golden values for stats.invariance when the configural model is saturated: a 3-item
# one-factor model has 9 moments and 9 free parameters per group, so df = 0 (lavaan
# reports chi-square 0, CFI 1, RMSEA 0). HolzingerSwineford1939's visual items x1-x3 by
# school, made with lavaan. Run from the repository root:
#   Rscript tests/expected/generate_r_invariance_three_items.R
# Writes tests/expected/invariance_three_items.json (the 301 rows it fitted, and the fits).
suppressPackageStartupMessages({ library(lavaan); library(jsonlite) })
x <- HolzingerSwineford1939[, c("x1", "x2", "x3", "school")]
model <- "f =~ x1 + x2 + x3"
steps <- list(configural = character(0), metric = "loadings",
              scalar = c("loadings", "intercepts"))
out <- list(lavaan = as.character(packageVersion("lavaan")),
            data = list(x1 = x$x1, x2 = x$x2, x3 = x$x3, school = as.character(x$school)))
for (step in names(steps)) {
  fit <- if (length(steps[[step]]) == 0) cfa(model, data = x, group = "school") else
    cfa(model, data = x, group = "school", group.equal = steps[[step]])
  out[[step]] <- as.list(fitMeasures(fit, c("chisq", "df", "cfi", "rmsea")))
}
write(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = FALSE),
      "tests/expected/invariance_three_items.json")
