# Not a product scenario: the harness's own test that a failing scenario is reported as failed,
# with its log, while the scenarios after it still run.
step "about to fail"
assert_eq "actual" "expected" "deliberate failure"
echo "never printed"
