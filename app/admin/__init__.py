"""The admin shell: navigation and the dashboard every staff user lands on."""
