"""Payment gateways for the customer portal: the adapter the portal calls (``adapter``) and a
local sandbox gateway (``sandbox``) that stands in for Stripe in development and tests."""
