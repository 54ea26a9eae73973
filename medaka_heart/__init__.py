"""medaka_heart: cardiac phenotypes from microscope videos of fish embryo hearts."""
__version__ = "0.2.0"
