"""The Epistemic Deck: a Streamlit app to watch the tournament live and read the book."""
