"""Learning: contextual features, Beta posteriors and Thompson ranking, the contextual (Bayesian logistic) model."""
