"""The versioned Great Expectations suites, one JSON file per dataset: shipped as package data of offerrank."""
