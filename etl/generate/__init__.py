"""`posguard generate`: deterministic synthetic drops that follow the data contract, with planted truth."""

from etl.generate.config import SCALES, Plan, make_plan
from etl.generate.core import TRUTH_SCHEMAS, GenerateResult, generate

__all__ = ["generate", "GenerateResult", "SCALES", "TRUTH_SCHEMAS", "Plan", "make_plan"]
