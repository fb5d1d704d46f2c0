"""An example Stepwise action plugin: the shape a host application copies to add its own actions."""
