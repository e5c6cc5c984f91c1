# Golden values for stats.structure, made with R 4.2 (psych 2.2.9, lavaan 0.6.14,
# semTools) on the committed synthetic sample. Run from the repository root:
#   Rscript tests/expected/generate_r_structure.R
# Writes tests/expected/structure_samples.json; R is not a test dependency.
suppressPackageStartupMessages({
  library(psych); library(lavaan); library(semTools); library(jsonlite); library(yaml)
})

instrument <- yaml::read_yaml("instruments/support-culture-v1.yaml")
responses <- read.csv("data_samples/responses_clean.csv", na.strings = "")
items <- Filter(function(i) is.null(i$kind) || i$kind == "scale", instrument$items)
core <- c("stigma", "psysafety", "pathways")

keyed <- function(scale_ids) {
  members <- Filter(function(i) i$scale %in% scale_ids, items)
  x <- responses[, vapply(members, function(i) i$id, "")]
  x[x == 9] <- NA
  for (i in members) if (isTRUE(i$reverse)) x[[i$id]] <- 6 - x[[i$id]]
  x
}

x <- na.omit(keyed(core))          # listwise, as lavaan's default
r <- cor(x)
kmo <- psych::KMO(r)
bartlett <- psych::cortest.bartlett(r, n = nrow(x))

model <- paste(vapply(core, function(s) {
  ids <- vapply(Filter(function(i) i$scale == s, items), function(i) i$id, "")
  paste(s, "=~", paste(ids, collapse = " + "))
}, ""), collapse = "\n")
fit <- lavaan::cfa(model, data = x, estimator = "ML")
measures <- lavaan::fitMeasures(fit, c("chisq", "df", "pvalue", "cfi", "tli", "rmsea",
                                       "rmsea.ci.lower", "rmsea.ci.upper", "srmr"))
std <- lavaan::standardizedSolution(fit)
loadings <- std[std$op == "=~", c("lhs", "rhs", "est.std")]
cr <- semTools::compRelSEM(fit)
ave <- semTools::AVE(fit)
htmt <- semTools::htmt(model, data = x)

result <- list(
  n = nrow(x), items = colnames(x),
  kmo_overall = kmo$MSA, kmo_items = as.list(kmo$MSAi),
  bartlett_chisq = bartlett$chisq, bartlett_df = bartlett$df, bartlett_p = bartlett$p.value,
  fit = as.list(measures),
  loadings = lapply(split(loadings, loadings$lhs), function(d) as.list(setNames(d$est.std, d$rhs))),
  composite_reliability = as.list(cr), ave = as.list(ave),
  htmt = lapply(core, function(a) as.list(setNames(htmt[a, core], core))) |> setNames(core)
)
writeLines(toJSON(result, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/expected/structure_samples.json")
