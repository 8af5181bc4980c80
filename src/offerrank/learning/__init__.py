"""Learning: Beta posteriors and Thompson ranking (`bandit.py`), and one folder per learning method: the contextual
(Bayesian logistic) model in `contextual/`."""
