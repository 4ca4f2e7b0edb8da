"""The dashboard, for `streamlit run app.py` in a clone; `transferlab app` runs the same page from anywhere.

Its code is in `transferlab/dashboard/` (the page itself: `transferlab/dashboard/page.py`).
"""

from transferlab.dashboard.page import main

main()
