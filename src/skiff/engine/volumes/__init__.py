"""A group's volumes behind one driver contract: emptyDir, secret and gitRepo
today; each driver prepares a volume's directory and removes it with the group."""
