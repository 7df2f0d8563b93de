"""`make chaos`: disruptions of real processes, each case's tasks counted, and an API soak.

The pure counting lives in `counting` and `soak_counts`; `ledger` reads what Redis
recorded, `cases` runs the disruptions, `soak` drives the API, `__main__` prints and
writes the table. Part of the dev package: never installed in an image.
"""
