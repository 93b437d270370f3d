"""Example FastAPI app deployed by the fastapi-app Ansible role."""
