"""Pictures for people: mask overlays, candidate contact sheets, box plots (:mod:`.overlays`), label maps on
orthogonal slices and NMI curves (:mod:`.labels`).

A low room (numpy, Pillow, matplotlib only): the proposer's contact sheet, the JULE command and the benches all
draw with it, and it imports nothing of scarceseg.
"""
