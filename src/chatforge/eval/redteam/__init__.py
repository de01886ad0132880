"""Red teaming: harmful requests, jailbreak attacks and bias probes, scored per checkpoint.

sources (where probes come from) -> transforms (attacks that wrap a request) -> run (answers
through the Engine, judged) -> judges (refusal and harm, each with its agreement on labels) and
bias (CrowS-Pairs and BBQ by likelihood) -> run/redteam/report.{json,md}.
"""
