"""Prefect tasks: thin wrappers adding retries, logging and artifacts around one `toolrl` call.

Retries only where a failure can pass by itself (a download, a service); none for training, where a
retry would only repeat the same failure after minutes of work.
"""
