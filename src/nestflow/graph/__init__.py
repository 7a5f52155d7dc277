"""Pure graph analysis over node shapes (id, inputs, outputs); never calls user code."""
