"""One frozen dataclass per workflow, activity, signal and update input and result.

Grouped by the system they talk to; each submodule is standard library only so that workflows
can import it through the sandbox.
"""
