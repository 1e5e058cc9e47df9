"""The promotion gate's policies (policies) and result types (types); selectors/gate.py
loads the inputs and assembles the gate."""
