# Reference values for fastpanel's CR2 covariance (vcov={"CR2": g}) and its Satterthwaite
# degrees of freedom, computed with R clubSandwich on explicit dummy regressions.
#
#   Rscript tests/reference/clubsandwich/make_reference.R      (from the repository root)
#
# Writes, next to this script:
#   grunfeld.csv, produc.csv   data of plm::Grunfeld and plm::Produc (the columns used)
#   synthetic_panel.csv        an unbalanced, shuffled panel drawn here with a fixed seed
#   cr2_reference.json         per case: slopes, CR2 covariance of the slopes, SE, t,
#                              Satterthwaite df and p-values
#
# Every model is lm(y ~ x + factor(fe1) [+ factor(fe2)], weights = w): the fixed effects are
# dummy columns, so clubSandwich's hat matrix is that of the full design. vcovCR(..., type =
# "CR2") with clubSandwich's defaults (target = identity; inverse_var = TRUE without weights,
# FALSE with them), and coef_test(..., test = "Satterthwaite"). Only the slopes are stored;
# fastpanel absorbs the effects and must reproduce these numbers.
#
# Numbers are written with 17 significant digits (sprintf("%.17g")); the data CSVs are read
# back before fitting so that R and Python fit the very same doubles.

suppressPackageStartupMessages({
  library(plm)
  library(clubSandwich)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
out_dir <- if (length(script)) dirname(normalizePath(script)) else "tests/reference/clubsandwich"

num17 <- function(x) sprintf("%.17g", x)
write_csv17 <- function(df, path) {
  out <- df
  for (col in names(out)) if (is.double(out[[col]])) out[[col]] <- num17(out[[col]])
  write.csv(out, path, row.names = FALSE, quote = FALSE)
}

# ---- data -------------------------------------------------------------------------------
data("Grunfeld", package = "plm")
write_csv17(Grunfeld[, c("firm", "year", "inv", "value", "capital")], file.path(out_dir, "grunfeld.csv"))

data("Produc", package = "plm")
produc <- data.frame(state = as.character(Produc$state), year = Produc$year,
                     region = as.integer(as.character(Produc$region)), gsp = Produc$gsp,
                     pcap = Produc$pcap, pc = Produc$pc, emp = Produc$emp, unemp = Produc$unemp)
write_csv17(produc, file.path(out_dir, "produc.csv"))

# Unbalanced synthetic panel: 60 firms over 12 years, each firm observed in a random 55-100%
# of the years; 18 markets (the clusters) that are nested neither in firms nor in years: a
# firm has a home market and is seen in another market in about 30% of its rows. Regressors
# are correlated with the effects; errors are heteroskedastic and correlated within markets.
set.seed(20240611)
n_firm <- 60; n_year <- 12; n_market <- 18
rows <- list()
for (f in seq_len(n_firm)) {
  keep <- sort(sample(n_year, max(3, round(n_year * runif(1, 0.55, 1)))))
  home <- sample(n_market, 1)
  market <- ifelse(runif(length(keep)) < 0.3, sample(n_market, length(keep), replace = TRUE), home)
  rows[[f]] <- data.frame(firm = f, year = 2000 + keep, market = market)
}
syn <- do.call(rbind, rows)
n <- nrow(syn)
a_f <- rnorm(n_firm); a_t <- rnorm(n_year); a_m <- rnorm(n_market)
syn$x1 <- 0.8 * a_f[syn$firm] + rnorm(n)
syn$x2 <- 0.5 * a_t[syn$year - 2000] + a_m[syn$market] + rnorm(n)
syn$x3 <- rexp(n) * (1 + 0.5 * (syn$firm %% 3))
e <- rnorm(n) * (0.5 + abs(syn$x1)) + 0.7 * a_m[syn$market]
syn$y <- 1 + 0.5 * syn$x1 - 0.3 * syn$x2 + 0.2 * syn$x3 + a_f[syn$firm] + a_t[syn$year - 2000] + e
syn$w <- runif(n, 0.2, 3)
syn <- syn[sample(n), c("firm", "year", "market", "y", "x1", "x2", "x3", "w")]
write_csv17(syn, file.path(out_dir, "synthetic_panel.csv"))

grunfeld <- read.csv(file.path(out_dir, "grunfeld.csv"))
produc <- read.csv(file.path(out_dir, "produc.csv"), stringsAsFactors = FALSE)
syn <- read.csv(file.path(out_dir, "synthetic_panel.csv"))

# ---- cases ------------------------------------------------------------------------------
# name, data, fastpanel formula, the same model with dummies for lm, cluster column, weights
cases <- list(
  list("grunfeld_firm_year_by_firm", "grunfeld", "inv ~ value + capital | firm + year",
       inv ~ value + capital + factor(firm) + factor(year), "firm", NULL),
  list("grunfeld_firm_by_firm", "grunfeld", "inv ~ value + capital | firm",
       inv ~ value + capital + factor(firm), "firm", NULL),
  list("grunfeld_firm_by_year", "grunfeld", "inv ~ value + capital | firm",
       inv ~ value + capital + factor(firm), "year", NULL),
  list("produc_state_by_region", "produc", "np.log(gsp) ~ np.log(pcap) + np.log(pc) + np.log(emp) + unemp | state",
       log(gsp) ~ log(pcap) + log(pc) + log(emp) + unemp + factor(state), "region", NULL),
  list("produc_state_by_state", "produc", "np.log(gsp) ~ np.log(pcap) + np.log(pc) + np.log(emp) + unemp | state",
       log(gsp) ~ log(pcap) + log(pc) + log(emp) + unemp + factor(state), "state", NULL),
  list("produc_state_year_by_region", "produc",
       "np.log(gsp) ~ np.log(pcap) + np.log(pc) + np.log(emp) + unemp | state + year",
       log(gsp) ~ log(pcap) + log(pc) + log(emp) + unemp + factor(state) + factor(year), "region", NULL),
  list("produc_state_year_by_state", "produc",
       "np.log(gsp) ~ np.log(pcap) + np.log(pc) + np.log(emp) + unemp | state + year",
       log(gsp) ~ log(pcap) + log(pc) + log(emp) + unemp + factor(state) + factor(year), "state", NULL),
  list("synthetic_firm_year_by_market", "synthetic", "y ~ x1 + x2 + x3 | firm + year",
       y ~ x1 + x2 + x3 + factor(firm) + factor(year), "market", NULL),
  list("synthetic_firm_by_market", "synthetic", "y ~ x1 + x2 + x3 | firm",
       y ~ x1 + x2 + x3 + factor(firm), "market", NULL),
  list("synthetic_firm_by_year", "synthetic", "y ~ x1 + x2 + x3 | firm",
       y ~ x1 + x2 + x3 + factor(firm), "year", NULL),
  list("synthetic_firm_year_by_market_weighted", "synthetic", "y ~ x1 + x2 + x3 | firm + year",
       y ~ x1 + x2 + x3 + factor(firm) + factor(year), "market", "w"),
  list("synthetic_firm_by_firm_weighted", "synthetic", "y ~ x1 + x2 + x3 | firm",
       y ~ x1 + x2 + x3 + factor(firm), "firm", "w")
)
frames <- list(grunfeld = grunfeld, produc = produc, synthetic = syn)

json_num <- function(x) paste0("[", paste(num17(x), collapse = ", "), "]")
json_str <- function(x) paste0("[", paste0('"', x, '"', collapse = ", "), "]")
json_mat <- function(m) paste0("[", paste(apply(m, 1, json_num), collapse = ", "), "]")

entries <- character()
for (cs in cases) {
  name <- cs[[1]]; data_name <- cs[[2]]; fml <- cs[[3]]; lm_fml <- cs[[4]]
  cluster <- cs[[5]]; wcol <- cs[[6]]
  d <- frames[[data_name]]
  fit <- if (is.null(wcol)) lm(lm_fml, data = d) else lm(lm_fml, data = d, weights = d[[wcol]])
  cf <- coef(fit)
  slopes <- names(cf)[!grepl("^factor\\(|^\\(Intercept\\)$", names(cf))]
  stopifnot(!any(is.na(cf[slopes])))
  V <- vcovCR(fit, cluster = d[[cluster]], type = "CR2")
  ct <- coef_test(fit, vcov = V, test = "Satterthwaite", coefs = slopes)
  Vs <- as.matrix(V)[slopes, slopes, drop = FALSE]
  entries <- c(entries, paste0(
    '    "', name, '": {\n',
    '      "data": "', data_name, '",\n',
    '      "formula": "', fml, '",\n',
    '      "r_formula": "', paste(deparse(lm_fml, width.cutoff = 500L), collapse = " "), '",\n',
    '      "cluster": "', cluster, '",\n',
    '      "weights": ', if (is.null(wcol)) "null" else paste0('"', wcol, '"'), ',\n',
    '      "nobs": ', nobs(fit), ',\n',
    '      "n_clusters": ', length(unique(d[[cluster]])), ',\n',
    '      "names": ', json_str(slopes), ',\n',
    '      "coef": ', json_num(cf[slopes]), ',\n',
    '      "vcov": ', json_mat(Vs), ',\n',
    '      "se": ', json_num(ct$SE), ',\n',
    '      "t": ', json_num(ct$tstat), ',\n',
    '      "df_satterthwaite": ', json_num(ct$df_Satt), ',\n',
    '      "p_satterthwaite": ', json_num(ct$p_Satt), '\n',
    '    }'))
}

meta <- paste0(
  '  "generated_by": "tests/reference/clubsandwich/make_reference.R",\n',
  '  "r_version": "', R.version.string, '",\n',
  '  "clubSandwich": "', as.character(packageVersion("clubSandwich")), '",\n',
  '  "plm": "', as.character(packageVersion("plm")), '",\n')
writeLines(c("{", meta, '  "cases": {', paste(entries, collapse = ",\n"), "  }", "}"),
           file.path(out_dir, "cr2_reference.json"))
cat("wrote", length(cases), "cases to", file.path(out_dir, "cr2_reference.json"), "\n")
