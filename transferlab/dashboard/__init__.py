"""The dashboard (`page.py`, run by `transferlab app`) and its parts: the server's shared resources, the
address, the controls, the live view, the results, the uploads, the transfer map and the class board.
The only part of transferlab that imports streamlit; it reaches the engine through `transferlab` and
`transferlab.serve`."""
