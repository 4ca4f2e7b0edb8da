"""The dashboard's parts (app.py is the page): the server's shared resources, the address, the
controls, the live view, the results, the uploads, predictions, the transfer map and the class board.
They reach the engine through `transferlab` and `transferlab.serve` only; the engine never imports
them, nor streamlit. `streamlit.toml` holds the page's Streamlit settings, which `transferlab app` passes."""
