"""Orders: buying an offer, applying the payment's outcome, bundles and listings."""
