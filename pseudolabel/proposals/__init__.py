"""Person proposals that need no downloaded weights: motion (static camera), OpenCV's HOG people
detector, and :class:`pseudolabel.proposals.people.PeopleProposer`, which combines them with
depth foreground and tracking (the default box source of ``gaitdata label``)."""
