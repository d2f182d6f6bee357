"""Lifecycle plumbing rclpy lacks: a ``change_state`` request for a transition that does not exist in
the current state (activate while active, activate after a failed configure) makes rclpy's own
service callback raise ``RCLError: Transition is not registered``, which kills the node. Here such a
request is refused (success false, a warning saying what is possible) and the node lives on."""

from __future__ import annotations

from lifecycle_msgs.srv import ChangeState
from rclpy.lifecycle import LifecycleNode


def available_transitions(node: LifecycleNode) -> dict[int, str]:
    """Transition id -> label of the transitions valid in the node's current state."""
    return {t[0]: t[1] for t in node._state_machine.available_transitions}


def refuse_invalid_transitions(node: LifecycleNode) -> None:
    """Wrap the node's ``~/change_state`` service so that invalid transitions are answered, not raised."""
    service = node._service_change_state
    original = service.callback

    def change_state(request: ChangeState.Request, response: ChangeState.Response) -> ChangeState.Response:
        valid = available_transitions(node)
        label, wanted = request.transition.label, request.transition.label or request.transition.id
        known = label in valid.values() if label else request.transition.id in valid
        if known:
            try:
                return original(request, response)
            except Exception as exc:  # rclpy raises RCLError: a lifecycle call never kills the node
                node.get_logger().error(f"lifecycle transition {wanted!r} failed: {exc}")
                response.success = False
                return response
        state = node._state_machine.current_state[1]
        node.get_logger().warn(
            f"refused lifecycle transition {wanted!r}: not possible in state {state!r}; "
            f"possible: {', '.join(f'{i} ({label})' for i, label in sorted(valid.items())) or 'none'}"
        )
        response.success = False
        return response

    service.callback = change_state
