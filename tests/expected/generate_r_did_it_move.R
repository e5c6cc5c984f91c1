# Golden values for stats/change.py: the difference in differences of a site's change
# against its peers' changes, its 95% interval (Welch-Satterthwaite t) and 90% interval.
# Each case is a site's score (0-100) and SE in two waves, then its peers'.
#   planted   the site rose 9.5 points, its four peers 0 on average, spread wider than
#             their sampling error
#   shared    the site and its three peers all rose about 6
#   floored   three peers with identical changes: the spread is floored at their mean
#             sampling variance of a change
#
# Run from the project root:  Rscript tests/expected/generate_r_did_it_move.R
# Writes tests/expected/did_it_move.json. R is not a test dependency.
suppressPackageStartupMessages(library(jsonlite))

did <- function(before, se_b, after, se_a) {
  d <- after - before
  m <- length(d) - 1
  vp <- max(var(d[-1]), mean(se_b[-1]^2 + se_a[-1]^2)) / m
  v <- se_b[1]^2 + se_a[1]^2 + vp
  df <- v^2 / (vp^2 / (m - 1))
  D <- d[1] - mean(d[-1])
  list(difference = D, site_change = d[1], peers_change = mean(d[-1]),
       peers_change_se = sqrt(vp), df = df,
       low = D - qt(.975, df) * sqrt(v), high = D + qt(.975, df) * sqrt(v),
       low90 = D - qt(.95, df) * sqrt(v), high90 = D + qt(.95, df) * sqrt(v))
}

cases <- list(
  planted = list(before = c(52.0, 55.1, 49.8, 58.3, 51.2), se_b = c(1.0, 1.1, 1.2, 0.9, 1.3),
                 after = c(61.5, 52.6, 52.9, 58.7, 50.2), se_a = c(0.9, 1.1, 1.2, 1.0, 1.2)),
  shared = list(before = c(50.0, 54.0, 47.0, 60.0), se_b = c(1.0, 1.0, 1.0, 1.0),
                after = c(56.2, 59.5, 53.8, 65.4), se_a = c(1.0, 1.0, 1.0, 1.0)),
  floored = list(before = c(50.0, 54.0, 47.0, 60.0), se_b = c(1.0, 1.5, 1.5, 1.5),
                 after = c(55.0, 55.0, 48.0, 61.0), se_a = c(1.0, 1.5, 1.5, 1.5)))

out <- lapply(cases, function(x) c(x, did(x$before, x$se_b, x$after, x$se_a)))
write_json(out, "tests/expected/did_it_move.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
