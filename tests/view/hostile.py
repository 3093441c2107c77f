"""A trajectory whose every field is hostile text, for the escaping tests."""

import json

SCRIPT = "<script>alert('pwned')</script>"
LONG = "x" * 20000


def hostile_trajectory() -> dict:
    return {
        "id": "evil</script><script>alert(1)</script>", "task_id": "t</div>", "stage": "initial",
        "messages": [
            {"role": "user", "content": "Question <b>bold</b> </div></td></tr></table> <!-- comment"},
            {"role": "assistant", "content": "<think>I plan \u2028 to </textarea> win</think>" + LONG,
             "tool_calls": [{"id": "c1", "type": "function",
                             "function": {"name": "<img src=x onerror=alert(2)>",
                                          "arguments": json.dumps({"code": SCRIPT})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": SCRIPT + " & </script><!--"},
        ],
        "final_answer": "</html>", "outcome": 1.0,
        "judge": {"analysis": "</style>", "critique": SCRIPT, "score": 0.1, "status": "ok"},
        "stop_reason": "answered",
    }
