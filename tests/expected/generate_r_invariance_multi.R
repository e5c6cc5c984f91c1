# Golden values for stats.invariance.multi_factor_invariance: the three-factor
# Holzinger-Swineford model fitted across the two schools by lavaan, configural, metric
# (group.equal = "loadings") and scalar (group.equal = c("loadings", "intercepts")).
# The JSON holds each school's n, mean vector and ML covariance matrix (divisor N, as
# lavaan's likelihood = "normal" uses them), so the Python test needs neither R nor the
# dataset; then lavaan's fit measures for each model and lavTestLRT's chi-square
# differences. Made with R 4.2 and lavaan 0.6.14. Run from the repository root:
#   Rscript tests/expected/generate_r_invariance_multi.R
# Writes tests/expected/invariance_multi.json.
suppressPackageStartupMessages({ library(lavaan); library(jsonlite) })

HS.model <- "visual  =~ x1 + x2 + x3
             textual =~ x4 + x5 + x6
             speed   =~ x7 + x8 + x9"
# lavaan's own spelling of "nothing equal" ("none"; an empty vector is refused).
steps <- list(configural = "none", metric = "loadings",
              scalar = c("loadings", "intercepts"))
fits <- lapply(steps, function(equal)
  cfa(HS.model, data = HolzingerSwineford1939, group = "school", group.equal = equal))

# The moments lavaan fitted, in its group order (first appearance in the data).
configural <- fits$configural
labels <- lavInspect(configural, "group.label")
nobs <- lavInspect(configural, "nobs")
sampstat <- lavInspect(configural, "sampstat")
items <- paste0("x", 1:9)
groups <- lapply(seq_along(labels), function(g) list(
  name = labels[[g]], n = nobs[[g]],
  means = unname(as.numeric(sampstat[[g]]$mean[items])),
  covariance = unname(lapply(items, function(i) as.numeric(sampstat[[g]]$cov[i, items])))))

measures <- c("chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr", "baseline.chisq",
              "baseline.df")
out <- list(lavaan = as.character(packageVersion("lavaan")),
            model = list(visual = c("x1", "x2", "x3"), textual = c("x4", "x5", "x6"),
                         speed = c("x7", "x8", "x9")),
            items = items, groups = groups)
for (step in names(steps)) out[[step]] <- as.list(fitMeasures(fits[[step]], measures))

lrt <- lavTestLRT(fits$configural, fits$metric, fits$scalar)
out$differences <- list(
  metric = list(chisq = lrt[["Chisq diff"]][2], df = lrt[["Df diff"]][2],
                pvalue = lrt[["Pr(>Chisq)"]][2]),
  scalar = list(chisq = lrt[["Chisq diff"]][3], df = lrt[["Df diff"]][3],
                pvalue = lrt[["Pr(>Chisq)"]][3]))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/expected/invariance_multi.json")
