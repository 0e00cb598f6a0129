"""The operator dashboard, served by the same process as the API.

``install_dashboard(app)`` adds the sign-in page, the dashboard pages (``/``, ``/grid``,
``/events``, ``/events/{id}``, ``/sites``, ``/sites/{id}``) and their assets to an app made
by :func:`gridflock.api.create_app`. Pages are thin HTML shells; the browser code in
``static/`` fills them from the REST API with the session cookie.
"""

from gridflock.web._routes import install_dashboard

__all__ = ["install_dashboard"]
