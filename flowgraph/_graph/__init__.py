"""_graph"""
