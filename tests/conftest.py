from tests.smoke.report import summary_lines


def pytest_terminal_summary(terminalreporter):
    lines = summary_lines()
    if lines:
        terminalreporter.section("timings (recorded, not asserted)")
        for line in lines:
            terminalreporter.write_line(line)
