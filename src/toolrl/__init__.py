"""toolrl: tool-use RL workflow (ToolRL reward design + Tool-call Reward Model)."""

__version__ = "0.1.0"
