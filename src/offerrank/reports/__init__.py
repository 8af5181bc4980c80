"""Reports: rate statistics, off-policy estimators, the HTML report page."""
