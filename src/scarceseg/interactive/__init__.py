"""Clicks (robot user), hint maps, refiners, session with undo.

The pieces a front end needs: :class:`~scarceseg.interactive.clicks.Click` and the robot users
(:mod:`.clicks`), two-channel hint maps (:mod:`.hints`), the :class:`~scarceseg.interactive.refiners.Refiner`
protocol with min-cut (:mod:`.refiners`; trained refiners open with
:func:`scarceseg.methods.registry.load_refiner`), and
:class:`~scarceseg.interactive.session.InteractiveSession` (:mod:`.session`). See docs/itermrl.md.
"""
