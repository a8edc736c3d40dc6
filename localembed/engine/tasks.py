"""The task names a request may give (each family maps them onto its own prompts in
families.py): here, apart, so that the command line can offer them without loading llama.cpp."""

TASKS = (
    "query", "document", "similarity", "classification", "clustering", "code", "qa",
    "fact_check", "summarization",
)
