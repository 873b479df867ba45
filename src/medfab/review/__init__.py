"""Expert review: a local web app for a visual Turing test of synthetic images, and its statistics.

``selection`` draws the images, ``db`` stores everything in one SQLite file, ``app`` is the Flask app that
``server`` runs under waitress, ``stats`` holds the estimators and ``results`` turns answers into figures.
"""
