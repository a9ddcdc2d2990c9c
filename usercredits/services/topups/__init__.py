"""Auto top-up: a rule buys an offer with a saved card when a balance falls low."""
