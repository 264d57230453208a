"""The Streamlit dashboard: a thin shell over `engine` (pages, chart builders, widget helpers)."""
