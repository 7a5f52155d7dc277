"""The one place where plans, engines, callbacks and reports meet."""
