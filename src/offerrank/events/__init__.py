"""Events: the XDM proposition-interaction layout as Spark reads it, quarantine routing, de-duplication."""
