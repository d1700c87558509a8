"""What inspection tells the layers above it, without knowing them.

Both signals are sent inside the transaction that records the decision, so a receiver's writes
commit or roll back with it, and a receiver's error refuses the decision (nothing half-done).
`labeling` listens to turn verdicts into labels and useful units into labeling tasks.
"""

from django.dispatch import Signal

# A person decided a unit (final decision or override). Arguments: decision (a DecisionEvent).
human_decision_recorded = Signal()

# The model decided a unit alone as it arrived. Arguments: unit, prediction, station.
automatic_decision_recorded = Signal()
