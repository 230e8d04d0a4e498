"""Sums JUnit XML reports (lit, GoogleTest, pytest) into one closing line
"N passed, N failed, N skipped"; exits 1 if anything failed or a report is
missing/unreadable (a suite that did not run is a failure, not a pass)."""
import sys
import xml.etree.ElementTree as ET


def main(paths):
    passed = failed = skipped = 0
    broken = []
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            broken.append(f"{path}: {e}")
            continue
        for case in root.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif case.find("skipped") is not None or case.get("status") == "notrun":
                skipped += 1
            else:
                passed += 1
    for b in broken:
        print(f"missing or unreadable report: {b}")
    failed += len(broken)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
