"""Clicks (robot user), hint maps, refiners, session with undo.

The pieces a front end needs: :class:`~scarceseg.interactive.clicks.Click` and the robot users
(:mod:`.clicks`), two-channel hint maps (:mod:`.hints`), the :class:`~scarceseg.interactive.refiners.Refiner`
protocol with min-cut and :func:`~scarceseg.interactive.refiners.load_refiner` (:mod:`.refiners`), and
:class:`~scarceseg.interactive.session.InteractiveSession` (:mod:`.session`). See docs/itermrl.md.
"""
