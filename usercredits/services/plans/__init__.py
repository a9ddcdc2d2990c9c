"""Renewing plans: a subscription offer bought to renew every cycle through the payment
provider's subscription."""
