"""One module per paper's pipeline behind fit()/predict()."""
