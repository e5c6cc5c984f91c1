# Golden values for stats.invariance, made with R 4.2 (lavaan 0.6.14) on the committed
# synthetic sample: one-factor models of each core scale, compared across site types.
# Run from the repository root:  Rscript tests/expected/generate_r_invariance.R
suppressPackageStartupMessages({ library(lavaan); library(jsonlite); library(yaml) })

instrument <- yaml::read_yaml("instruments/support-culture-v1.yaml")
responses <- read.csv("data_samples/responses_clean.csv", na.strings = "")
sites <- read.csv("data_samples/sites.csv")
responses$site_type <- sites$site_type[match(responses$site, sites$site_code)]
items <- Filter(function(i) is.null(i$kind) || i$kind == "scale", instrument$items)

result <- list()
for (scale in c("stigma", "psysafety", "pathways")) {
  members <- Filter(function(i) i$scale == scale, items)
  ids <- vapply(members, function(i) i$id, "")
  x <- responses[, c(ids, "site_type")]
  for (id in ids) {
    x[[id]][x[[id]] == 9] <- NA
    if (isTRUE(members[[match(id, ids)]]$reverse)) x[[id]] <- 6 - x[[id]]
  }
  x <- na.omit(x)
  model <- paste("f =~", paste(ids, collapse = " + "))
  steps <- list(configural = character(0), metric = "loadings",
                scalar = c("loadings", "intercepts"))
  out <- list(n = nrow(x), groups = as.list(table(x$site_type)))
  for (step in names(steps)) {
    fit <- if (length(steps[[step]]) == 0) cfa(model, data = x, group = "site_type") else
      cfa(model, data = x, group = "site_type", group.equal = steps[[step]])
    out[[step]] <- as.list(fitMeasures(fit, c("chisq", "df", "cfi", "rmsea", "baseline.chisq",
                                              "baseline.df")))
  }
  result[[scale]] <- out
}
writeLines(toJSON(result, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/expected/invariance_samples.json")
