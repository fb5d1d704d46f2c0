"""Step handlers, one module per family; `dispatch.HANDLERS` maps step types to them."""
