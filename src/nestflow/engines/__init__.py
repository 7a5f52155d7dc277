"""How node calls and map items execute; engines know nothing of caches or callbacks."""
