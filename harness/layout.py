"""File names shared by the jobs that write results and the reports that read them."""

RESULT_FILE = "result.json"
REPORT_FILES = ("report.csv", "report.parquet", "report.md", "pareto.png")
